"""The browser UI (``flowmapsr serve``): a Gradio page around an :class:`SRPipeline`."""
