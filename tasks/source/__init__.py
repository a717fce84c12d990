"""Talk 01/03 - the source itself: SAST over the tree, signed commits, the GitHub workflows gate."""
