{
  "targets": [
    {
      "target_name": "native_fs",
      "sources": ["src/native_fs.c", "src/common.c", "src/times.c", "src/xattr.c", "src/nodes.c", "src/files.c", "src/aead.c", "src/scan.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall"],
      "conditions": [
        ["OS=='linux'", {"libraries": ["-ldl"]}]
      ]
    }
  ]
}
