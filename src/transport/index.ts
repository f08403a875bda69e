/** Shipping to other machines: the SSH transport and the remote content-addressed store. */
export { extractFetched, type Fetched } from "./fetch.js";
export { REMOTE_EXIT } from "./scripts.js";
export { shCommand, shQuote, splitCommandLine } from "./shell.js";
export { SSH_FAILED, SshConnection, SshError, type SshTarget, sshProgram } from "./ssh.js";
export {
  INLINE_ENTRIES,
  newId,
  type ObjectSources,
  type RemoteFacts,
  RemoteStore,
  runHeader,
  type ShipStats,
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
