import { koaApp } from '../helpers/apps/koa.js';
import { runHttpSuite } from './suite.js';

runHttpSuite(koaApp);
