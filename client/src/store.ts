// Where a client keeps its session (id, token, last seq) so a reload resumes the same conversation.

/** What a store keeps; `lastSeq` is the last logged event the application was given. */
export interface StoredSession {
  sessionId: string;
  token: string;
  lastSeq: number;
}

/** Synchronous key-value storage: `sessionStorage`, `localStorage`, or anything shaped like them. */
export interface SessionStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A store that forgets with the process (the default outside browsers). */
export function memoryStore(): SessionStore {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** `sessionStorage` where there is one (a tab keeps its conversation across reloads), else memory. */
export function defaultStore(): SessionStore {
  try {
    const storage = (globalThis as { sessionStorage?: SessionStore }).sessionStorage;
    if (storage) return storage;
  } catch {
    // Storage access can throw (sandboxed frames, disabled cookies): memory it is.
  }
  return memoryStore();
}

export function readStored(store: SessionStore, key: string): StoredSession | null {
  try {
    const value = JSON.parse(store.getItem(key) ?? "null") as Partial<StoredSession> | null;
    if (value && typeof value.sessionId === "string" && typeof value.token === "string" && Number.isSafeInteger(value.lastSeq)) {
      return { sessionId: value.sessionId, token: value.token, lastSeq: value.lastSeq as number };
    }
  } catch {
    // Unreadable: start over.
  }
  return null;
}
