import { honoApp } from '../helpers/apps/hono.js';
import { runHttpSuite } from './suite.js';

runHttpSuite(honoApp);
