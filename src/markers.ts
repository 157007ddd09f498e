/** Where flash and temp markers live, as in CodeIgniter. */
export const VARS_KEY = '__ci_vars';
/** When the session ID was last regenerated (seconds), as in CodeIgniter. */
export const LAST_REGENERATE_KEY = '__ci_last_regenerate';

/** A flash marker ('new' this request, 'old' the previous one) or a tempdata expiry in seconds. */
export type Marker = 'new' | 'old' | number;
export type Markers = Record<string, Marker>;

export function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !(value instanceof Date) && !Array.isArray(value)
  );
}

/**
 * The per-request flash/temp step: 'new' flash becomes 'old', 'old' flash and tempdata whose expiry
 * is strictly before now are deleted with their markers.
 */
export function ageMarkers(data: Map<string, unknown>, nowSeconds: number): void {
  const markers = data.get(VARS_KEY);
  if (!isPlainRecord(markers)) {
    if (markers !== undefined) data.delete(VARS_KEY);
    return;
  }
  const kept: Markers = {};
  for (const [key, marker] of Object.entries(markers as Markers)) {
    if (marker === 'new') kept[key] = 'old';
    else if (marker === 'old' || typeof marker !== 'number' || marker < nowSeconds)
      data.delete(key);
    else kept[key] = marker;
  }
  if (Object.keys(kept).length === 0) data.delete(VARS_KEY);
  else data.set(VARS_KEY, kept);
}

/**
 * Top-level payload key of keepsake's own facts about a session: when it was created and its
 * per-session lifetime. The lifecycle takes it out of the data when it reads a session and puts
 * it back when it writes one, so userdata never shows it.
 */
export const META_KEY = '__keepsake_meta';

export interface SessionMeta {
  /** When the session was created (seconds); kept across regenerations. */
  created?: number;
  /** This session's own lifetime (seconds; 0: until the browser closes), set by setLifetime(). */
  lifetime?: number;
  /** The user the session is bound to (bindUser()), and the session's handle in that user's index. */
  user?: string;
  handle?: string;
  /** When the user's index last recorded this session (seconds). */
  indexedAt?: number;
  /** When a bound session was last written or touched (seconds): its "last active" time. */
  active?: number;
}

/** Takes keepsake's facts out of freshly read data; what is malformed is dropped. */
export function takeMeta(data: Map<string, unknown>): SessionMeta {
  const raw = data.get(META_KEY);
  if (raw === undefined) return {};
  data.delete(META_KEY);
  const meta: SessionMeta = {};
  if (!isPlainRecord(raw)) return meta;
  if (typeof raw.created === 'number' && Number.isFinite(raw.created)) meta.created = raw.created;
  if (typeof raw.lifetime === 'number' && Number.isInteger(raw.lifetime) && raw.lifetime >= 0)
    meta.lifetime = raw.lifetime;
  if (typeof raw.user === 'string' && typeof raw.handle === 'string') {
    meta.user = raw.user;
    meta.handle = raw.handle;
    for (const name of ['indexedAt', 'active'] as const) {
      const value = raw[name];
      if (typeof value === 'number' && Number.isFinite(value)) meta[name] = value;
    }
  }
  return meta;
}
