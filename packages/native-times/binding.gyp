{
  "targets": [
    {
      "target_name": "native_times",
      "sources": ["src/native_times.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
