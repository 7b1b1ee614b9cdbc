/**
 * The libp2p implementation of core's Network port, and what a Box needs around it.
 */
import './polyfill.ts';

export {
  createLibp2pNetwork,
  Libp2pNetwork,
  protocolId,
  DEFAULT_PROTOCOL_LIMITS,
  CONTROL_LIMITS,
  type Libp2pNetworkOptions,
  type PeerAddressBook,
  type ProtocolLimits,
  type RequestOptions,
  type HandleOptions,
} from './libp2p-network.ts';
export { pskFromSecret, pnetKeyFile, pskFromKeyFile, reservePsk, ReservePskProtector, PSK_BYTES, type PskCipher, type PskProtectorInit } from './psk.ts';
export {
  BLOCKS_PROTOCOL_ID,
  fetchBlocksOverStream,
  serveBlocksOverStream,
  servePushOverStream,
  type BlockGetter,
  type BlockPutter,
  type ServePushOptions,
  type OnBlock,
  type FetchBlocksOptions,
  type FetchBlocksResult,
  type ServeBlocksOptions,
} from './blocks.ts';
export { BlockSessions, PUSH_PROTOCOL_ID, type BlockSessionsOptions, type StreamOpener } from './block-sessions.ts';
export * from './errors.ts';
