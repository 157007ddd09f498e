<?php

// Loaded by app/Config/Routes.php in production (ENVIRONMENT-specific routes), with $routes in scope:
// the JSON endpoints of keepsake's CodeIgniter test controller.
$routes->get('keepsake/ping', 'KeepsakeTest::ping');
$routes->get('keepsake/login', 'KeepsakeTest::login');
$routes->get('keepsake/read', 'KeepsakeTest::read');
$routes->get('keepsake/set', 'KeepsakeTest::set');
$routes->get('keepsake/remove', 'KeepsakeTest::remove');
$routes->get('keepsake/flash', 'KeepsakeTest::flash');
$routes->get('keepsake/flash-read', 'KeepsakeTest::flashRead');
$routes->get('keepsake/temp', 'KeepsakeTest::temp');
$routes->get('keepsake/temp-read', 'KeepsakeTest::tempRead');
$routes->get('keepsake/increment', 'KeepsakeTest::increment');
$routes->get('keepsake/destroy', 'KeepsakeTest::destroy');
$routes->get('keepsake/regenerate', 'KeepsakeTest::regenerate');
