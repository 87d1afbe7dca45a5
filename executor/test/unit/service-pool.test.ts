import { servicePoolSuite } from '../suites/service-pool.suite.ts';
import { openTestService } from '../support/service.ts';

servicePoolSuite(openTestService);
