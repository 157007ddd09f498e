import { createHash } from 'node:crypto';

const POINTS_PER_WEIGHT = 160;

/** A server on the ring (a MemcachedConnection). */
export interface RingNode {
  readonly id: string;
  readonly weight: number;
}

/** The part of a key that picks the server: the text inside `{…}` when present (a hash tag). */
export function routingKey(key: string): string {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

function point(text: string): number {
  return createHash('md5').update(text).digest().readUInt32BE(0);
}

/**
 * A weighted consistent-hash ring (ketama-style: each server owns weight × 160 points) that routes
 * a key by its hash tag, so a session's data and its lock always land on the same server, and
 * adding or removing a server moves only that server's share of the sessions.
 */
export class TaggedRing<Node extends RingNode = RingNode> {
  readonly #nodes = new Map<string, Node>();
  #points: { at: number; node: Node }[] = [];
  #single: Node | undefined;

  get nodes(): Node[] {
    return [...this.#nodes.values()];
  }

  addNode(node: Node): void {
    this.#nodes.set(node.id, node);
    this.#rebuild();
  }

  removeNode(id: string): void {
    this.#nodes.delete(id);
    this.#rebuild();
  }

  getNode(id: string): Node | undefined {
    return this.#nodes.get(id);
  }

  getNodesByKey(key: string): Node[] {
    const node = this.nodeFor(key);
    return node === undefined ? [] : [node];
  }

  /** The server that owns `key`'s hash tag; undefined for an empty ring. */
  nodeFor(key: string): Node | undefined {
    const points = this.#points;
    if (points.length === 0) return undefined;
    // One server owns every key: no need to hash.
    if (this.#single !== undefined) return this.#single;
    const target = point(routingKey(key));
    let low = 0;
    let high = points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((points[middle]?.at ?? 0) < target) low = middle + 1;
      else high = middle;
    }
    return points[low === points.length ? 0 : low]?.node;
  }

  #rebuild(): void {
    const points: { at: number; node: Node }[] = [];
    for (const node of this.#nodes.values()) {
      const count = Math.max(1, node.weight) * POINTS_PER_WEIGHT;
      for (let index = 0; index < count; index += 1) {
        points.push({ at: point(`${node.id}-${index}`), node });
      }
    }
    points.sort((left, right) => left.at - right.at);
    this.#points = points;
    this.#single = this.#nodes.size === 1 ? this.nodes[0] : undefined;
  }
}
