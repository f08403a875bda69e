/** Shipping to other machines: the SSH transport and the remote content-addressed store. */

export { type Finished, LocalConnection, ShellConnection, SSH_FAILED } from "./connection.js";
export { extractFetched, type Fetched } from "./fetch.js";
export { REMOTE_EXIT } from "./scripts.js";
export { shCommand, shQuote, splitCommandLine } from "./shell.js";
export { loginUser, SshConnection, SshError, type SshTarget, sshProgram } from "./ssh.js";
export {
  INLINE_ENTRIES,
  newId,
  type ObjectSources,
  type RemoteFacts,
  RemoteStore,
  runHeader,
  type ShipStats,
  type TreeStatus,
} from "./store.js";
export {
  hashFile,
  listTree,
  objectId,
  type Tree,
  type TreeEntry,
  treeKey,
  treeObjects,
} from "./tree.js";
