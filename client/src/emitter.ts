// A small typed event emitter: `on` returns the function that removes the listener.

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<(value: never) => void>>();

  on<K extends keyof Events>(event: K, listener: (value: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (value: never) => void);
    return () => set.delete(listener as (value: never) => void);
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    // A Set visits what is added during the loop and skips what is removed: no copy per event.
    for (const listener of set) {
      try {
        (listener as (value: Events[K]) => void)(value);
      } catch (err) {
        // A listener's bug must not stop the stream for the others; surface it asynchronously.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
