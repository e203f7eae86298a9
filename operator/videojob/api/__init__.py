"""The VideoJob API: typed models (the contract) and the CRD generated from them. Knows nothing of Kopf or FFmpeg."""
