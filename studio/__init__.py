"""Fine-tuning studio: the engine (no UI code here; the Gradio app lives in ``studio.ui``)."""

__version__ = "0.1.0"
