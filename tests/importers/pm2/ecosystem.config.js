// ecosystem.config.js written as plain data (no require, no process.env)
module.exports = {
  apps: [
    {
      name: 'api',
      script: 'sleep',
      args: ['1000'],
      instances: 2,
      env: { NODE_ENV: 'production', },
      /* PM2 takes 'M' or 'G' */
      max_memory_restart: '1G',
      kill_timeout: 5000,
    },
  ],
};
