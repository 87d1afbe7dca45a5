import { servicePushSuite } from '../suites/service-push.suite.ts';
import { openTestService } from '../support/service.ts';

servicePushSuite(openTestService);
