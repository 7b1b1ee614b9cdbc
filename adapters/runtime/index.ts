/**
 * The Box runtime a real Box embeds (see README "Run a reserve"):
 *
 *   const { reserveId } = await initReserve('/srv/box', { capacity: 2e12, rf: 3 });
 *   const rt = await createBox({ dataDir: '/srv/box' });
 *   const api = new BoxDaemonApi(rt);           // status, events, backup, restore
 *   ...
 *   await rt.stop();
 */
export { BoxRuntime, createBox, stickyListen, type BoxNotice, type BoxRuntimeOptions } from './runtime.ts';
export { BoxDaemonApi, openConditions, type BoxDaemonApiOptions } from './daemon-api.ts';
export {
  DEFAULT_LISTEN,
  createInvite,
  dialableAddresses,
  initReserve,
  joinReserve,
  readLiveDaemonFile,
  type InitOptions,
  type InitResult,
  type InviteResult,
  type JoinResult,
  type NewBoxOptions,
} from './reserve.ts';
export { decodeInvite, encodeInvite, peerIdOfAddr, TOKEN_PREFIX, type Invite } from './token.ts';
export { acquireLock, readReserveFile, writeFileAtomic, type ReserveFile, type DataDirLock } from './datadir.ts';
export { parseDuration, parseSize, formatBytes } from './units.ts';
export * from './errors.ts';
