/**
 * Node 20 lacks `Promise.withResolvers` (Node 22 API); libp2p 3 and its modules call it at run time, and without it
 * every dial fails with a bare ECONNRESET. Import this module before anything from libp2p.
 */
interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };
if (typeof P.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T>(this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve'];
      let reject!: Resolvers<T>['reject'];
      // Honour subclassing like the native method does: `this` is the constructor it was called on.
      const Ctor = (typeof this === 'function' ? this : Promise) as PromiseConstructor;
      const promise = new Ctor<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

export {};
