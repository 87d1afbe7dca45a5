# The airfleet executor service as a Nomad job. Deployed by the nomad stack (stacks/src/components/nomad.ts),
# which fills in the variables below; it also runs as is with
#   nomad job run -var-file=executor.vars.hcl stacks/jobs/executor.nomad.hcl
#
# No secret appears here. The API's TLS certificate and key are rendered by Nomad from the Nomad Variable
# nomad/jobs/airfleet-executor (items tls_cert and tls_key; stacks/README.md says how to put them). The database credentials are read by the service from the Secrets Manager secret of
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
  default     = "pool,batch,nomad"
  description = "Backends the service runs (AIRFLEET_BACKENDS)"
}

# The nomad backend's settings (stacks/src/lib/nomad-backend-env.ts; docs/nomad-backend.md has the table).
variable "nomad_datacenters" {
  type        = string
  description = "Datacenters of the Airflow task jobs, comma-separated (AIRFLEET_NOMAD_DATACENTERS)"
}

variable "nomad_node_pool" {
  type        = string
  description = "Node pool of the Airflow task jobs (AIRFLEET_NOMAD_NODE_POOL)"
}

variable "nomad_default_image" {
  type        = string
  description = "Image of tasks whose workload names none (AIRFLEET_NOMAD_DEFAULT_IMAGE)"
}

variable "nomad_job_prefix" {
  type        = string
  description = "Task jobs are <prefix>-<workload id>-<attempt>; the ACL policy grants their variables (AIRFLEET_NOMAD_JOB_PREFIX)"
}

variable "nomad_host_volumes" {
  type        = string
  description = "The clients' host volumes mounted into every task, <volume>=<path in the task>,... (AIRFLEET_NOMAD_HOST_VOLUMES)"
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

      # The service speaks HTTPS only. The check dials the allocation's address, which the certificate
      # (issued for the executor's DNS name) does not name: encrypted, not verified.
      check {
        type            = "http"
        protocol        = "https"
        tls_skip_verify = true
        path            = "/healthz"
        interval        = "10s"
        timeout         = "2s"
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

      # HTTPS: the API's certificate and key from the Nomad Variable nomad/jobs/airfleet-executor in this job's
      # namespace, which the job's workload identity may read without any ACL policy. Until the variable
      # exists Nomad holds the task (template event "Missing: nomad.var.block(...)"), so the deployment misses
      # its healthy_deadline and `cdktf deploy` fails (detach = false) instead of serving plain HTTP.
      # Rendered into the secrets directory (not readable through `nomad alloc fs`), readable only by the
      # image's user (uid and gid 999: images/executor/Dockerfile). A changed variable is rendered again and
      # the service loads the new pair itself (executor/src/api/tls.ts), so no restart.
      template {
        data        = "{{ with nomadVar \"nomad/jobs/airfleet-executor\" }}{{ .tls_cert }}{{ end }}"
        destination = "${NOMAD_SECRETS_DIR}/tls-cert.pem"
        perms       = "0600"
        uid         = 999
        gid         = 999
        change_mode = "noop"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/airfleet-executor\" }}{{ .tls_key }}{{ end }}"
        destination = "${NOMAD_SECRETS_DIR}/tls-key.pem"
        perms       = "0600"
        uid         = 999
        gid         = 999
        change_mode = "noop"
      }

      # PostgreSQL settings the libpq way (PG* variables); the credentials are fetched by the service.
      env {
        AIRFLEET_ENVIRONMENT           = var.environment
        AIRFLEET_HOST                  = "0.0.0.0"
        AIRFLEET_PORT                  = "${NOMAD_PORT_http}"
        AIRFLEET_TLS_CERT_FILE         = "${NOMAD_SECRETS_DIR}/tls-cert.pem"
        AIRFLEET_TLS_KEY_FILE          = "${NOMAD_SECRETS_DIR}/tls-key.pem"
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
        # The nomad backend: where Airflow task jobs go and what they get (stacks/src/lib/nomad-backend-env.ts).
        AIRFLEET_NOMAD_DATACENTERS   = var.nomad_datacenters
        AIRFLEET_NOMAD_NODE_POOL     = var.nomad_node_pool
        AIRFLEET_NOMAD_DEFAULT_IMAGE = var.nomad_default_image
        AIRFLEET_NOMAD_JOB_PREFIX    = var.nomad_job_prefix
        AIRFLEET_NOMAD_HOST_VOLUMES  = var.nomad_host_volumes
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
