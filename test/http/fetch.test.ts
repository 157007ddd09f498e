import { fetchApp } from '../helpers/apps/fetch.js';
import { runHttpSuite } from './suite.js';

runHttpSuite(fetchApp);
