// placeholder: filled in by the gemm work
