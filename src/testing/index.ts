export { FakeClock } from '../clock.js';
export {
  type ConformanceHarness,
  type ConformanceTarget,
  openHarness,
  runConformanceSuite,
} from './conformance.js';
