"""Talk 02/04 - OCI images: the local registry, the hermetic buildah build, OpenSCAP over the image root filesystem."""
