export { FakeClock } from '../clock.js';
export {
  type ConformanceTarget,
  openStore,
  runConformanceSuite,
  type StoreHarness,
  type TestFunctions,
} from './conformance.js';
export { type Fault, FaultyStore, faultyDriver } from './faulty-store.js';
export { requestFor } from './request-for.js';
