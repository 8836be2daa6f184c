//! Fetches the token signing key from AWS Secrets Manager or an SSM SecureString
//! parameter (`BERTH_TOKEN_KEY_SECRET`), so a deployed function's environment holds
//! only the secret's ARN, never the key.

use aws_config::Region;

/// Where the key lives, from its ARN.
#[derive(Debug, PartialEq, Eq)]
enum Location<'a> {
    SecretsManager { region: &'a str },
    Parameter { region: &'a str },
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "BERTH_TOKEN_KEY_SECRET must be the ARN of a Secrets Manager secret or an SSM parameter (arn:aws:secretsmanager:... or arn:aws:ssm:...:parameter/...), not {0:?}"
    )]
    NotAnArn(String),
    #[error("reading the token signing key from {arn}: {message}")]
    Fetch { arn: String, message: String },
    #[error("{arn} holds no text value: store the PEM key as the secret's string")]
    Empty { arn: String },
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>`
fn locate(arn: &str) -> Result<Location<'_>, SecretError> {
    let not_arn = || SecretError::NotAnArn(arn.to_owned());
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, _partition, service, region, _account, resource] = parts[..] else {
        return Err(not_arn());
    };
    if prefix != "arn" || region.is_empty() {
        return Err(not_arn());
    }
    match service {
        "secretsmanager" if resource.starts_with("secret:") => {
            Ok(Location::SecretsManager { region })
        }
        "ssm" if resource.starts_with("parameter/") => Ok(Location::Parameter { region }),
        _ => Err(not_arn()),
    }
}

/// The PEM text stored at `arn`. The client uses the ARN's region, whatever
/// `AWS_REGION` says; the SDK's endpoint variables (`AWS_ENDPOINT_URL_SECRETS_MANAGER`,
/// `AWS_ENDPOINT_URL_SSM`) still apply.
pub async fn fetch(arn: &str) -> Result<String, SecretError> {
    let location = locate(arn)?;
    let region = match location {
        Location::SecretsManager { region } | Location::Parameter { region } => region,
    };
    let sdk = berth_core::aws::config_loader()
        .region(Region::new(region.to_owned()))
        .load()
        .await;
    let fetch_error = |message: String| SecretError::Fetch {
        arn: arn.to_owned(),
        message,
    };
    let value = match location {
        Location::SecretsManager { .. } => {
            aws_sdk_secretsmanager::Client::new(&sdk)
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    fetch_error(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                })?
                .secret_string
        }
        // GetParameter takes the ARN as the name; SecureStrings need decryption.
        Location::Parameter { .. } => aws_sdk_ssm::Client::new(&sdk)
            .get_parameter()
            .name(arn)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| fetch_error(aws_sdk_ssm::error::DisplayErrorContext(e).to_string()))?
            .parameter
            .and_then(|p| p.value),
    };
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SecretError::Empty {
            arn: arn.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_their_service_and_region() {
        assert_eq!(
            locate("arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth/key-AbCdEf")
                .unwrap(),
            Location::SecretsManager {
                region: "eu-west-1"
            }
        );
        assert_eq!(
            locate("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/berth/token-key").unwrap(),
            Location::Parameter {
                region: "cn-north-1"
            }
        );
        for bad in [
            "berth/key",
            "arn:aws:s3:::bucket",
            "arn:aws:secretsmanager::123456789012:secret:x",
            "arn:aws:ssm:us-east-1:123456789012:document/x",
        ] {
            assert!(
                matches!(locate(bad), Err(SecretError::NotAnArn(_))),
                "{bad}"
            );
        }
    }
}
