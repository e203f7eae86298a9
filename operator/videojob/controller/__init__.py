"""The Kopf operator: pure builders of Kubernetes objects from the models, and thin handlers doing the I/O."""
