import { nodeApp } from '../helpers/apps/node.js';
import { runHttpSuite } from './suite.js';

runHttpSuite(nodeApp);
