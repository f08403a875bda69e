{
  "targets": [
    {
      "target_name": "pyferry_native",
      "sources": ["unzip.c"],
      "libraries": ["-ldeflate"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
