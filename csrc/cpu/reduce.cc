// placeholder: filled in by the reduce work
