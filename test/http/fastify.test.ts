import { fastifyApp } from '../helpers/apps/fastify.js';
import { runHttpSuite } from './suite.js';

runHttpSuite(fastifyApp);
