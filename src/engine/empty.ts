// A shared, frozen empty array for state that is usually empty: the owner holds no array of its own.

/**
 * Replace it with a fresh array before the first push (compare by identity); a push on it throws,
 * so forgetting that is caught at once instead of sharing items between owners.
 */
export function frozenEmpty<T>(): T[] {
  return Object.freeze([]) as unknown as T[];
}
