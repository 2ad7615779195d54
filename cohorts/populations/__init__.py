"""Population specs shipped with isct (YAML data files; a package so that they are installed)."""
