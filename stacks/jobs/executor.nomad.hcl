# The airfleet executor service as a Nomad job. Deployed by the nomad stack (stacks/src/components/nomad.ts),
# which fills in the variables below; it also runs as is with
#   nomad job run -var-file=executor.vars.hcl stacks/jobs/executor.nomad.hcl
#
# No secret appears here. The database credentials are read by the service from the Secrets Manager secret of
# its own database role (AIRFLEET_DATABASE_SECRET_ARN; the client's instance role may read it), again when a
# login is refused (rotation). The API
# tokens (admin, submit, enroll) are Secrets Manager secrets too, by ARN: the service fills an empty one on
# its first start and registers their values (executor/src/service/token-secrets.ts). The Nomad API is
# reached through the Task API socket with the job's workload identity, whose ACL policy the nomad stack
# binds to this job.

variable "environment" {
  type = string
}

variable "image" {
  type        = string
  description = "executor image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/airfleet-prod/executor:1.2.3"
}

variable "namespace" {
  type        = string
  description = "namespace this service job runs in"
}

variable "task_namespace" {
  type        = string
  description = "namespace the executor submits Airflow task jobs to"
}

variable "datacenter" {
  type = string
}

variable "node_pool" {
  type = string
}

variable "count" {
  type    = number
  default = 2
}

variable "cpu" {
  type    = number
  default = 1000
}

variable "memory" {
  type    = number
  default = 512
}

variable "port" {
  type    = number
  default = 8470
}

variable "aws_region" {
  type = string
}

variable "batch_job_queue" {
  type        = string
  description = "The batch backend's default job queue (AIRFLEET_BATCH_JOB_QUEUE)"
}

variable "batch_job_definition" {
  type        = string
  description = "The batch backend's default job definition (AIRFLEET_BATCH_JOB_DEFINITION)"
}

variable "batch_queues" {
  type        = string
  default     = "{}"
  description = "JSON: per workload queue, its Batch job queue and job definition (AIRFLEET_BATCH_QUEUES)"
}

variable "batch_log_group" {
  type        = string
  description = "Log group of the Batch job definitions (AIRFLEET_BATCH_LOG_GROUP)"
}

variable "backends" {
  type        = string
  default     = "pool,batch"
  description = "Backends the service runs (AIRFLEET_BACKENDS)"
}

variable "admin_token_secret_arn" {
  type        = string
  description = "Secrets Manager secret of the admin API token (filled by the service when empty)"
}

variable "submit_token_secret_arn" {
  type        = string
  description = "Secrets Manager secret of the submit API token Airflow uses (filled by the service when empty)"
}

variable "enroll_token_secret_arn" {
  type        = string
  description = "Secrets Manager secret of the workers' enrollment token (filled by the service when empty)"
}

variable "batch_runnable_timeout_seconds" {
  type    = string
  default = "2100"
}

variable "database_host" {
  type = string
}

variable "database_port" {
  type    = string
  default = "5432"
}

variable "database_name" {
  type = string
}

variable "secret_key_secret_arn" {
  type        = string
  description = "Secrets Manager secret of the key sealing workloads' secretEnv (filled by the service when empty)"
}

variable "database_secret_arn" {
  type        = string
  description = "ARN of the executor's database role secret (JSON with username and password)"
}

job "airfleet-executor" {
  namespace   = var.namespace
  type        = "service"
  datacenters = [var.datacenter]
  node_pool   = var.node_pool

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "executor" {
    count = var.count

    # One instance per machine: a lost client takes at most one replica with it.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        static = var.port
      }
    }

    service {
      name     = "airfleet-executor"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    task "executor" {
      driver = "docker"

      config {
        image = var.image
        # The image's entrypoint is `tini -- airfleet`: args start at the subcommand.
        args  = ["serve"]
        # Host networking: the service reaches the instance role through IMDSv2 (hop limit 1), which Airflow
        # tasks in the task namespace cannot, as that namespace forbids host networking.
        network_mode    = "host"
        readonly_rootfs = true
      }

      # A workload identity token in NOMAD_TOKEN, for the Task API socket; no ACL token to store anywhere.
      identity {
        env         = true
        change_mode = "restart"
      }

      # PostgreSQL settings the libpq way (PG* variables); the credentials are fetched by the service.
      env {
        AIRFLEET_ENVIRONMENT           = var.environment
        AIRFLEET_HOST                  = "0.0.0.0"
        AIRFLEET_PORT                  = "${NOMAD_PORT_http}"
        PGHOST                         = var.database_host
        PGPORT                         = var.database_port
        PGDATABASE                     = var.database_name
        PGSSLMODE                      = "verify-full"
        PGSSLROOTCERT                  = "/opt/airfleet/rds-ca-bundle.pem"
        AIRFLEET_DATABASE_SECRET_ARN   = var.database_secret_arn
        AIRFLEET_BATCH_RESOURCE_PREFIX = "airfleet-${var.environment}-"
        AIRFLEET_BACKENDS              = var.backends
        # The API token secrets (ARNs, not values).
        AIRFLEET_ADMIN_TOKEN_SECRET_ARN  = var.admin_token_secret_arn
        AIRFLEET_SUBMIT_TOKEN_SECRET_ARN = var.submit_token_secret_arn
        AIRFLEET_ENROLL_TOKEN_SECRET_ARN = var.enroll_token_secret_arn
        # The key sealing secretEnv, the same for every instance (ARN, not the value).
        AIRFLEET_SECRET_KEY_SECRET_ARN = var.secret_key_secret_arn
        NOMAD_ADDR                     = "unix://${NOMAD_SECRETS_DIR}/api.sock"
        NOMAD_NAMESPACE                = var.task_namespace
        AWS_REGION                     = var.aws_region
        # The batch backend's queues and job definitions (stacks/src/lib/batch-targets.ts).
        AIRFLEET_BATCH_JOB_QUEUE                = var.batch_job_queue
        AIRFLEET_BATCH_JOB_DEFINITION           = var.batch_job_definition
        AIRFLEET_BATCH_QUEUES                   = var.batch_queues
        AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS = var.batch_runnable_timeout_seconds
        AIRFLEET_BATCH_LOG_GROUP                = var.batch_log_group
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
