// placeholder: filled in by the elementwise work
