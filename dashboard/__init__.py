"""What the pages share: the cached connection, the current selection, progress and widgets."""
