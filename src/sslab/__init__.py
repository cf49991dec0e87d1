"""sslab: self-supervised representation learning -- train, explain, reproduce.

``sslab.step(method, optimizer, views, step)`` is one training step of a method (:mod:`sslab.methods.step`);
``sslab.StepOutput`` what its forward returns. Both are imported on first use, so ``import sslab`` stays light.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "step":
        from .methods.step import step

        return step
    if name == "StepOutput":
        from .methods.base import StepOutput

        return StepOutput
    raise AttributeError(f"module 'sslab' has no attribute '{name}'")
