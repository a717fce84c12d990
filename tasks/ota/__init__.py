"""Talk 03/04 - over-the-air updates (issue #15): TUF repository, RAUC bundles, fleet desired state."""
