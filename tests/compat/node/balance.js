// Calls messagebird.balance.read() with MessageBird's official Node SDK, unchanged.
// The SDK's host is fixed to rest.messagebird.com over https, so this script points
// the `https` module it requires at a plain-HTTP birdbalance server on loopback.
// Usage: node balance.js <port> <access key>; prints one JSON line.
'use strict';

const http = require('http');
const https = require('https');

const port = Number(process.argv[2]);
const accessKey = process.argv[3];

https.request = function (options) {
  const redirected = Object.assign({}, options, { hostname: '127.0.0.1', port: port });
  return http.request(redirected);
};

const messagebird = require('messagebird').initClient(accessKey);

messagebird.balance.read(function (err, data) {
  if (err) {
    console.log(JSON.stringify({
      error: { message: err.message, statusCode: err.statusCode, errors: err.errors },
    }));
  } else {
    console.log(JSON.stringify({ balance: data }));
  }
});
