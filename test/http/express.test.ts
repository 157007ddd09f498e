import { expressApp } from '../helpers/apps/express.js';
import { runHttpSuite } from './suite.js';

runHttpSuite(expressApp);
