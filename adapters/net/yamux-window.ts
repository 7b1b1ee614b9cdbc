/**
 * Yamux window updates once half the receive window is used, not after every data frame.
 *
 * @chainsafe/libp2p-yamux 8 answers every data frame it receives with a window update frame. Each one is a frame of
 * its own through the whole stack, on both ends: a muxer frame, a noise message, a PSK encryption, a socket write on
 * the receiver; a socket read, two decryptions and a frame on the sender. For a 1 MiB block that is 16 or more
 * updates, and one more per batch of small blocks. HashiCorp's yamux (the protocol's reference) and go-libp2p send
 * an update only once the window to give back is at least half the window; the sender still has the other half to
 * send meanwhile, so it never waits on an update it would otherwise have had. This does the same: an established
 * stream skips the update while more than half its receive window is still open. Everything else (the SYN/ACK
 * updates that open a stream, a stream resumed after a pause with its window used up, the window's growth) goes
 * through the library's own code unchanged, and the wire format is the same, so a peer without this is unaffected.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import { IncompatibleDependencyError } from './errors.ts';

/** The fields this reads (private in the library's types, stable in its code since yamux 7). */
interface WindowState {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

type Updater = (this: YamuxStream) => void;
const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: Updater };
const perFrame: Updater = proto.sendWindowUpdate;
let installed = false;

/** Whether an update is due: always outside the established state; there, once half the window is used. */
export function windowUpdateDue(s: WindowState): boolean {
  return s.state !== StreamState.Established || s.recvWindowCapacity * 2 <= s.recvWindow;
}

/** Install the half-window rule for every yamux stream of the process (idempotent). */
export function halfWindowUpdates(): void {
  if (installed) return;
  if (typeof perFrame !== 'function') throw new IncompatibleDependencyError('@chainsafe/libp2p-yamux: YamuxStream.sendWindowUpdate is gone; yamux-window.ts needs updating');
  installed = true;
  proto.sendWindowUpdate = function (this: YamuxStream) {
    if (windowUpdateDue(this as unknown as WindowState)) perFrame.call(this);
  };
}
