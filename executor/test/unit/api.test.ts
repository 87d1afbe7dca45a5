import { apiSuite } from '../suites/api.suite.ts';
import { openTestService } from '../support/service.ts';

apiSuite(openTestService);
