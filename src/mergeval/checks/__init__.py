"""Built-in check types, one module each (`@mergeval.check("<type>")`); the registry imports them lazily."""
