/** A Linux x86_64 CPython 3.11 target and marker environment for tests, with overrides. */
import type { MarkerEnvironment } from "../../src/python/marker.js";
import type { Target } from "../../src/python/target.js";

export function linuxEnv(over: Partial<MarkerEnvironment> = {}): MarkerEnvironment {
  return {
    implementation_name: "cpython",
    implementation_version: "3.11.7",
    os_name: "posix",
    platform_machine: "x86_64",
    platform_python_implementation: "CPython",
    platform_release: "6.1.0",
    platform_system: "Linux",
    platform_version: "#1 SMP",
    python_full_version: "3.11.7",
    python_version: "3.11",
    sys_platform: "linux",
    ...over,
  };
}

export function linuxTarget(
  over: Partial<Target> = {},
  env: Partial<MarkerEnvironment> = {},
): Target {
  return {
    implementation: "cpython",
    pythonVersion: "3.11.7",
    abiTags: ["cp311"],
    platforms: ["manylinux_2_17_x86_64", "linux_x86_64"],
    markerEnv: linuxEnv(env),
    ...over,
  };
}
