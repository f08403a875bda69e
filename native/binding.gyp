{
  "targets": [
    {
      "target_name": "pyferry_inflate",
      "sources": ["inflate.c"],
      "libraries": ["-ldeflate"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
