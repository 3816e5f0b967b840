{
  "targets": [
    {
      "target_name": "structura",
      "sources": [
        "csrc/addon.cc",
        "csrc/tensor.cc",
        "csrc/host_cache.cc",
        "csrc/threadpool.cc",
        "csrc/device.cc",
        "csrc/cpu/cpuinfo.cc",
        "csrc/cpu/gemm.cc",
        "csrc/cpu/elementwise.cc",
        "csrc/cpu/reduce.cc",
        "csrc/ops/creation.cc",
        "csrc/ops/elementwise.cc",
        "csrc/ops/reduce.cc",
        "csrc/ops/dense.cc",
        "csrc/cpu/lowrank.cc",
        "csrc/ops/lowrank.cc",
        "csrc/cuda_none.cc"
      ],
      "include_dirs": ["csrc", "cuda"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"],
      "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fvisibility=hidden"],
      "cflags_cc!": ["-fno-exceptions"],
      "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17"}
    }
  ]
}
