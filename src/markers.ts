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
