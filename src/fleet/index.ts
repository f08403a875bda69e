/** Fleets: the wheelhouse (a local wheel repository with a release log) and what serves it. */

export { isProjectFolder } from "../install/project-build.js";
export {
  type AddOutcome,
  type AddStatus,
  addWheels,
  listWheels,
  matchWheels,
  openWheelhouse,
  pruneSelection,
  pruneWheels,
  removeWheels,
  type WheelEntry,
  type Wheelhouse,
  wheelhouseAt,
  wheelhouseRoot,
  withWheelhouse,
} from "./wheelhouse.js";
export { addSources, buildProject } from "./wheelhouse-build.js";
export { type LogRecord, readLog } from "./wheelhouse-log.js";
export { type MirrorOptions, mirrorRequirements } from "./wheelhouse-mirror.js";
export { type RunningServer, type ServeOptions, serveWheelhouse } from "./wheelhouse-server.js";
export { exportWheelhouse, type ImportResult, importWheelhouse } from "./wheelhouse-transfer.js";
