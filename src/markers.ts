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
  return meta;
}
