"""videojob-operator: VideoJob API models, the Kopf operator and the FFmpeg transcoder runtime."""

__version__ = "0.1.0"
