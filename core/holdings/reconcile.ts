/**
 * Finding which blocks two Boxes disagree on, by walking their holdings trees (holdings-index.ts) top-down.
 * Pure and transport-agnostic: `answer` turns a request into a response against an index, `reconcile` drives the
 * walk through any `ask(bytes) => Promise<bytes>` (network.ts wires it to the Network port; tests call `answer`
 * directly).
 *
 * The walk, one request per round (split only when a round would exceed the message limit):
 *  - Round 1 expands the root: the answerer returns the (count, hash) of each of its children.
 *  - For every child whose summary differs from ours: if the answerer has nothing there, all our blocks there are
 *    `onlyLocal` (no further question); if it is a bucket, or we have nothing there, or listing our blocks there
 *    costs less than descending further would, it becomes an *item* of the next round (we list our entries; the
 *    answer marks the ones it lacks and lists the ones it has that we did not list); otherwise we expand it next
 *    round. Items and expansions of one round travel in one message, so a full descent to the buckets takes
 *    depth + 1 round trips (5 with the default geometry) and no walk takes more.
 *  - Equal summaries are never descended: bytes grow with the differences, not with n.
 * With a PartitionFilter both sides compute every summary over the selected partitions only, so Boxes can compare
 * just the partitions they share (or one slice per sweep) without the rest showing up as differences.
 *
 * The answerer is stateless: each request stands alone, so a round can go to a reconnected peer. If either index
 * changes during a walk, the result reflects each bucket as it was when its entries were exchanged; the next
 * walk picks up the rest.
 */
import type { CID } from 'multiformats/cid';
import { AbortedError } from '../errors.ts';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  EXPAND_WIRE_MAX,
  itemWireMax,
  MAX_MESSAGE_BYTES,
  requestOverhead,
  RESPONSE_OVERHEAD,
  responseItemWireMax,
  summariesWireMax,
} from './codec.ts';
import type { HoldingsRequest, HoldingsResponse, NodeRef, RequestItem, ResponseItem } from './codec.ts';
import { HoldingsGeometryMismatchError, MalformedHoldingsMessageError } from './errors.ts';
import { Coverage, PartitionFilter } from './filter.ts';
import { cidFromEntryKey, compareKeys, RECORD_BYTES } from './holdings-index.ts';
import type { HoldingsIndex } from './holdings-index.ts';
import type { HolderReport } from './report.ts';
import { ENTRY_KEY_BYTES, equal128, HASH_BYTES } from './set-hash.ts';

/** Bytes of one entry on the wire (digest and a one-byte codec), for cost estimates. */
const ENTRY_WIRE = 33;
/** Bytes of one non-empty child summary on the wire (a ~2-byte count and the hash), for cost estimates. */
const SUMMARY_WIRE = 2 + HASH_BYTES;

export interface AnswerOptions {
  /** Largest request accepted and response sent (default MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
}

/**
 * Answer one holdings request against `index`. Throws MalformedHoldingsMessageError, HoldingsMessageTooLargeError,
 * UnsupportedHoldingsVersionError or HoldingsGeometryMismatchError for requests it will not answer.
 */
export function answer(index: HoldingsIndex, request: Uint8Array, options: AnswerOptions = {}): Uint8Array {
  const maxBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  const req = decodeRequest(request, maxBytes);
  if (req.geometry.partitionBits !== index.partitionBits || req.geometry.levelBits !== index.levelBits)
    throw new HoldingsGeometryMismatchError(
      `asker partitions ${req.geometry.partitionBits}/${req.geometry.levelBits} bits, this Box ${index.partitionBits}/${index.levelBits}`,
    );
  const filter = req.filter;
  const fanout = index.fanout;

  const total = req.expand.length * fanout;
  const counts: number[] = new Array<number>(total);
  const lanes = new Uint32Array(total * 4);
  let at = 0;
  for (const n of req.expand) {
    const first = n.index * fanout;
    for (let c = 0; c < fanout; c++, at++) counts[at] = index.summaryInto(n.level + 1, first + c, filter, lanes, at * 4);
  }
  const hashes = new Uint8Array(lanes.buffer, lanes.byteOffset, lanes.byteLength).slice();
  if (!littleEndian()) swapLanes(hashes);

  const items: ResponseItem[] = req.items.map((item) => answerItem(index, filter, item));
  return encodeResponse({ levelBits: index.levelBits, counts, hashes, items }, maxBytes);
}

function littleEndian(): boolean {
  return new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
}

function swapLanes(bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i += 4) {
    const a = bytes[i]!;
    const b = bytes[i + 1]!;
    bytes[i] = bytes[i + 3]!;
    bytes[i + 1] = bytes[i + 2]!;
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}

/** Visit each bucket under a node that the filter selects. */
function forBuckets(index: HoldingsIndex, ref: NodeRef, filter: PartitionFilter, visit: (bucket: number) => void): void {
  const [start, width] = index.span(ref.level, ref.index);
  const cov = filter.coverage(start, start + width);
  if (cov === Coverage.None) return;
  for (let b = start; b < start + width; b++) if (cov === Coverage.All || filter.includes(b)) visit(b);
}

function answerItem(index: HoldingsIndex, filter: PartitionFilter, item: RequestItem): ResponseItem {
  const missing = new Uint8Array(Math.ceil(item.count / 8));
  let extra = new Uint8Array(ENTRY_KEY_BYTES * 16);
  let extraCount = 0;
  let j = 0; // position in the asker's list (ascending, and buckets ascend with keys)
  forBuckets(index, item, filter, (bucket) => {
    const [data, base, n] = index.records(bucket);
    for (let i = 0; i < n; i++) {
      const o = base + i * RECORD_BYTES;
      while (j < item.count && compareKeys(item.keys, j * ENTRY_KEY_BYTES, data, o) < 0) {
        missing[j >>> 3]! |= 1 << (j & 7);
        j++;
      }
      if (j < item.count && compareKeys(item.keys, j * ENTRY_KEY_BYTES, data, o) === 0) {
        j++;
        continue;
      }
      if ((extraCount + 1) * ENTRY_KEY_BYTES > extra.length) {
        const grown = new Uint8Array(extra.length * 2);
        grown.set(extra);
        extra = grown;
      }
      extra.set(data.subarray(o, o + ENTRY_KEY_BYTES), extraCount * ENTRY_KEY_BYTES);
      extraCount++;
    }
  });
  for (; j < item.count; j++) missing[j >>> 3]! |= 1 << (j & 7);
  return { missing, listed: item.count, extra: extra.subarray(0, extraCount * ENTRY_KEY_BYTES), extraCount };
}

export interface ReconcileOptions {
  /** Compare only these partitions (default: all). Must be for the index's partition count. */
  filter?: PartitionFilter;
  /** Largest request sent and response accepted (default MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
  /**
   * The peer's published report, when known. If its count and root equal ours (and no filter is set) the sets
   * are equal and no request is sent at all.
   */
  remoteReport?: HolderReport;
  signal?: AbortSignal;
}

export interface ReconcileStats {
  /** Sequential request/response exchanges (the latency cost). */
  rounds: number;
  /** Messages sent (more than rounds only when a round had to be split to respect the size limit). */
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  /** Nodes whose children were asked for. */
  nodesExpanded: number;
  /** Subtrees whose entries were exchanged. */
  itemsExchanged: number;
}

export interface ReconcileResult {
  /** Blocks we hold and the peer does not, in (digest, codec) order. */
  onlyLocal: CID[];
  /** Blocks the peer holds and we do not, in (digest, codec) order. */
  onlyRemote: CID[];
  stats: ReconcileStats;
}

interface PendingItem {
  item: RequestItem;
  /** Remote count under the node (for sizing the answer). */
  remoteCount: number;
}

interface Batch {
  expand: NodeRef[];
  items: PendingItem[];
}

/**
 * Walk `local` against a remote index reached through `ask`, and return the symmetric difference. Throws
 * MalformedHoldingsMessageError when an answer does not parse or does not fit its question, and whatever `ask`
 * throws (network errors, a RemoteError carrying the answerer's refusal).
 */
export async function reconcile(
  local: HoldingsIndex,
  ask: (request: Uint8Array) => Promise<Uint8Array>,
  options: ReconcileOptions = {},
): Promise<ReconcileResult> {
  const maxBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  const filter = options.filter ?? PartitionFilter.all(local.partitions);
  if (filter.partitions !== local.partitions)
    throw new HoldingsGeometryMismatchError(`filter is for ${filter.partitions} partitions, the index has ${local.partitions}`);
  const stats: ReconcileStats = { rounds: 0, requests: 0, bytesSent: 0, bytesReceived: 0, nodesExpanded: 0, itemsExchanged: 0 };
  const onlyLocal: Uint8Array[] = [];
  const onlyRemote: Uint8Array[] = [];
  const geometry = local.geometry;
  const fanout = local.fanout;
  const depth = local.depth;

  const report = options.remoteReport;
  if (report !== undefined && filter.isAll && report.count === local.count && equalBytes(report.root, local.root()))
    return { onlyLocal: [], onlyRemote: [], stats };

  const lanes = new Uint32Array(4);
  const localSummary = (level: number, index: number): number => {
    lanes.fill(0);
    return local.summaryInto(level, index, filter, lanes, 0);
  };

  let expand: NodeRef[] = filter.coverage(0, local.partitions) === Coverage.None ? [] : [{ level: 0, index: 0 }];
  let items: PendingItem[] = [];
  const overhead = requestOverhead(filter);

  while (expand.length > 0 || items.length > 0) {
    if (options.signal?.aborted) throw new AbortedError();
    stats.rounds++;
    const batches = plan(expand, items, overhead, fanout, maxBytes);
    const answers = await Promise.all(
      batches.map(async (batch) => {
        const req: HoldingsRequest = { geometry, filter, expand: batch.expand, items: batch.items.map((p) => p.item) };
        const bytes = encodeRequest(req, maxBytes);
        stats.requests++;
        stats.bytesSent += bytes.length;
        const reply = await ask(bytes);
        stats.bytesReceived += reply.length;
        return { batch, res: decodeResponse(reply, maxBytes) };
      }),
    );
    if (options.signal?.aborted) throw new AbortedError();
    const nextExpand: NodeRef[] = [];
    const nextItems: PendingItem[] = [];
    for (const { batch, res } of answers) {
      checkShape(res, batch, local.levelBits);
      stats.nodesExpanded += batch.expand.length;
      stats.itemsExchanged += batch.items.length;
      let at = 0;
      for (const n of batch.expand) {
        const level = n.level + 1;
        for (let c = 0; c < fanout; c++, at++) {
          const index = n.index * fanout + c;
          const [start, width] = local.span(level, index);
          if (filter.coverage(start, start + width) === Coverage.None) {
            if (res.counts[at] !== 0) throw bad('the answer counts blocks outside the filter');
            continue;
          }
          const remoteCount = res.counts[at]!;
          const count = localSummary(level, index);
          if (count === remoteCount && equal128(lanes, 0, lanesAt(res.hashes, at), 0)) continue;
          if (remoteCount === 0) {
            collectAll(local, { level, index }, filter, onlyLocal);
            continue;
          }
          const exchangeNow =
            level === depth ||
            (count === 0 && remoteCount * ENTRY_WIRE <= maxBytes / 4) ||
            (count + remoteCount) * ENTRY_WIRE <= (depth - level) * fanout * SUMMARY_WIRE;
          if (exchangeNow) nextItems.push({ item: itemFor(local, { level, index }, filter, count), remoteCount });
          else nextExpand.push({ level, index });
        }
      }
      batch.items.forEach((p, i) => settleItem(local, filter, p.item, res.items[i]!, onlyLocal, onlyRemote));
    }
    expand = nextExpand;
    items = nextItems;
  }

  const toCids = (keys: Uint8Array[]): CID[] =>
    keys.sort((a, b) => compareKeys(a, 0, b, 0)).map((k) => cidFromEntryKey(k, 0));
  return { onlyLocal: toCids(onlyLocal), onlyRemote: toCids(onlyRemote), stats };
}

function bad(message: string): MalformedHoldingsMessageError {
  return new MalformedHoldingsMessageError(`holdings answer does not fit its request: ${message}`);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const laneScratch = new Uint32Array(4);
function lanesAt(hashes: Uint8Array, i: number): Uint32Array {
  const o = i * HASH_BYTES;
  for (let k = 0; k < 4; k++) {
    const p = o + k * 4;
    laneScratch[k] = (hashes[p]! | (hashes[p + 1]! << 8) | (hashes[p + 2]! << 16) | (hashes[p + 3]! << 24)) >>> 0;
  }
  return laneScratch;
}

function checkShape(res: HoldingsResponse, batch: Batch, levelBits: number): void {
  if (res.levelBits !== levelBits) throw bad(`fanout bits ${res.levelBits}, expected ${levelBits}`);
  if (res.counts.length !== batch.expand.length * 2 ** levelBits)
    throw bad(`${res.counts.length} child summaries for ${batch.expand.length} nodes`);
  if (res.items.length !== batch.items.length) throw bad(`${res.items.length} item answers for ${batch.items.length} items`);
  res.items.forEach((r, i) => {
    if (r.listed !== batch.items[i]!.item.count) throw bad(`item ${i} answers ${r.listed} entries, we listed ${batch.items[i]!.item.count}`);
  });
}

/** Split a round into messages that respect the size limit, in order. */
function plan(expand: NodeRef[], items: PendingItem[], overhead: number, fanout: number, maxBytes: number): Batch[] {
  const batches: Batch[] = [];
  let cur: Batch = { expand: [], items: [] };
  let reqBytes = overhead;
  let resBytes = RESPONSE_OVERHEAD;
  const push = (addReq: number, addRes: number): void => {
    if ((cur.expand.length > 0 || cur.items.length > 0) && (reqBytes + addReq > maxBytes || resBytes + addRes > maxBytes)) {
      batches.push(cur);
      cur = { expand: [], items: [] };
      reqBytes = overhead;
      resBytes = RESPONSE_OVERHEAD;
    }
    reqBytes += addReq;
    resBytes += addRes;
  };
  for (const n of expand) {
    push(EXPAND_WIRE_MAX, summariesWireMax(1, fanout));
    cur.expand.push(n);
  }
  for (const p of items) {
    push(itemWireMax(p.item.count), responseItemWireMax(p.item.count, p.remoteCount));
    cur.items.push(p);
  }
  if (cur.expand.length > 0 || cur.items.length > 0) batches.push(cur);
  return batches;
}

/** Our entries under a node (within the filter), as a request item. */
function itemFor(local: HoldingsIndex, ref: NodeRef, filter: PartitionFilter, count: number): RequestItem {
  const keys = new Uint8Array(count * ENTRY_KEY_BYTES);
  let k = 0;
  forBuckets(local, ref, filter, (bucket) => {
    const [data, base, n] = local.records(bucket);
    for (let i = 0; i < n; i++, k++) {
      const o = base + i * RECORD_BYTES;
      keys.set(data.subarray(o, o + ENTRY_KEY_BYTES), k * ENTRY_KEY_BYTES);
    }
  });
  return { level: ref.level, index: ref.index, keys, count: k };
}

function collectAll(local: HoldingsIndex, ref: NodeRef, filter: PartitionFilter, out: Uint8Array[]): void {
  forBuckets(local, ref, filter, (bucket) => {
    const [data, base, n] = local.records(bucket);
    for (let i = 0; i < n; i++) out.push(data.slice(base + i * RECORD_BYTES, base + i * RECORD_BYTES + ENTRY_KEY_BYTES));
  });
}

function settleItem(
  local: HoldingsIndex,
  filter: PartitionFilter,
  item: RequestItem,
  res: ResponseItem,
  onlyLocal: Uint8Array[],
  onlyRemote: Uint8Array[],
): void {
  for (let j = 0; j < item.count; j++)
    if ((res.missing[j >>> 3]! & (1 << (j & 7))) !== 0) onlyLocal.push(item.keys.slice(j * ENTRY_KEY_BYTES, (j + 1) * ENTRY_KEY_BYTES));
  const [start, width] = local.span(item.level, item.index);
  let j = 0;
  for (let k = 0; k < res.extraCount; k++) {
    const o = k * ENTRY_KEY_BYTES;
    const p = local.partitionOfKey(res.extra, o);
    if (p < start || p >= start + width || !filter.includes(p)) throw bad('an extra entry lies outside the subtree or the filter');
    while (j < item.count && compareKeys(item.keys, j * ENTRY_KEY_BYTES, res.extra, o) < 0) j++;
    if (j < item.count && compareKeys(item.keys, j * ENTRY_KEY_BYTES, res.extra, o) === 0) throw bad('an extra entry is one we listed');
    onlyRemote.push(res.extra.slice(o, o + ENTRY_KEY_BYTES));
  }
}
