// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ERC-8004 Validation Registry (v1.0): the functions and events every implementation has.
/// @notice An agent's owner or operator asks a validator to check a piece of work; the validator
///         answers with a score from 0 (failed) to 100 (passed), possibly several times.
interface IERC8004Validation {
    /// @notice `validatorAddress` was asked to validate work of `agentId` described at `requestURI`.
    event ValidationRequest(
        address indexed validatorAddress,
        uint256 indexed agentId,
        string requestURI,
        bytes32 indexed requestHash
    );

    /// @notice `validatorAddress` answered request `requestHash` with `response` (0-100).
    event ValidationResponse(
        address indexed validatorAddress,
        uint256 indexed agentId,
        bytes32 indexed requestHash,
        uint8 response,
        string responseURI,
        bytes32 responseHash,
        string tag
    );

    /// @notice Ask `validatorAddress` to validate work of `agentId` (owner or operator only).
    function validationRequest(
        address validatorAddress,
        uint256 agentId,
        string calldata requestURI,
        bytes32 requestHash
    ) external;

    /// @notice The request's validator scores it 0-100; may be called again, the last counts.
    function validationResponse(
        bytes32 requestHash,
        uint8 response,
        string calldata responseURI,
        bytes32 responseHash,
        string calldata tag
    ) external;

    /// @notice The identity registry agents are resolved against.
    function getIdentityRegistry() external view returns (address identityRegistry);

    /// @notice The request's validator, agent and latest response.
    function getValidationStatus(bytes32 requestHash)
        external
        view
        returns (
            address validatorAddress,
            uint256 agentId,
            uint8 response,
            bytes32 responseHash,
            string memory tag,
            uint256 lastUpdate
        );

    /// @notice Count and average response of `agentId`'s answered requests, filtered by
    ///         validators (empty = all) and tag (empty = all).
    function getSummary(uint256 agentId, address[] calldata validatorAddresses, string calldata tag)
        external
        view
        returns (uint64 count, uint8 averageResponse);

    /// @notice Every request about `agentId`, oldest first.
    function getAgentValidations(uint256 agentId) external view returns (bytes32[] memory requestHashes);

    /// @notice Every request addressed to `validatorAddress`, oldest first.
    function getValidatorRequests(address validatorAddress)
        external
        view
        returns (bytes32[] memory requestHashes);
}
