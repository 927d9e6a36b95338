using System.Diagnostics;
using System.Threading.Channels;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.Recognition;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>
/// The one inference worker. Received messages (and direct requests, which have no message to acknowledge) wait
/// in a bounded queue; the worker classifies whatever has queued up in one batch (the GEMM path), publishes the
/// answers through each message's protocol, and only then acknowledges the messages, in the order they came.
/// </summary>
public sealed class InferenceWorker
{
    private readonly ModuleSettings _settings;
    private readonly IReadOnlyList<MessageProtocol> _protocols;
    private readonly NativeProtocol _unknownTopic;
    private readonly IntentRuntime _runtime;
    private readonly MqttConnection? _connection; // null when no protocol speaks MQTT (Wyoming alone)
    private readonly ModuleCounters _counters;
    private readonly ILogger _logger;
    private readonly Channel<Job> _queue;

    private abstract record Job;

    /// <summary>A message from the broker, acknowledged once answered.</summary>
    private sealed record MessageJob(ReceivedMessage Message) : Job;

    /// <summary>
    /// A request from another front end of this process (Wyoming): answered through its task. That front end counts
    /// its answers and failures in the statistics itself, with its own request's time.
    /// </summary>
    private sealed record DirectJob(string Text, IReadOnlyCollection<string>? IntentFilter, long ReceivedTimestamp, TaskCompletionSource<IntentResult> Answer) : Job;

    public InferenceWorker(ModuleSettings settings, IReadOnlyList<MessageProtocol> protocols, IntentRuntime runtime, MqttConnection? connection,
        ModuleCounters counters, ILogger logger)
    {
        _settings = settings;
        _protocols = protocols;
        _unknownTopic = new NativeProtocol(settings.SiteId);
        _runtime = runtime;
        _connection = connection;
        _counters = counters;
        _logger = logger;
        // Full queue: the receive handler waits, MQTTnet stops reading, the broker holds the rest. Nothing is dropped.
        _queue = Channel.CreateBounded<Job>(new BoundedChannelOptions(settings.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>
    /// Queues a received message. Waits for room, but never on a dead connection: MQTTnet reports a lost broker
    /// only after the receive handler returns, and the worker cannot free room while it waits to publish on the
    /// next connection (a deadlock that FaultTests found). A message given up here is not acknowledged, so the
    /// broker delivers it again.
    /// </summary>
    public async Task EnqueueAsync(ReceivedMessage message, CancellationToken stopping)
    {
        MqttConnection connection = _connection ?? throw new InvalidOperationException("no MQTT connection to receive on");
        _counters.Inference.SetQueueDepth(_queue.Reader.Count + 1);
        var job = new MessageJob(message);
        while (!_queue.Writer.TryWrite(job))
        {
            if (stopping.IsCancellationRequested || message.Connection != connection.Connection || !connection.IsConnected)
            {
                Interlocked.Increment(ref _counters.StaleSkipped);
                return;
            }
            using var poll = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            poll.CancelAfter(TimeSpan.FromMilliseconds(100));
            try
            {
                await _queue.Writer.WaitToWriteAsync(poll.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>Classifies one utterance on the same queue, batches and engine as the MQTT messages.</summary>
    public async Task<IntentResult> ClassifyAsync(string text, IReadOnlyCollection<string>? intentFilter, CancellationToken cancellation)
    {
        var answer = new TaskCompletionSource<IntentResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        _counters.Inference.SetQueueDepth(_queue.Reader.Count + 1);
        await _queue.Writer.WriteAsync(new DirectJob(text, intentFilter, Stopwatch.GetTimestamp(), answer), cancellation);
        return await answer.Task.WaitAsync(cancellation);
    }

    /// <summary>Runs until stopped or <see cref="Complete"/>d.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        var batch = new List<Job>(_settings.MaxBatch);
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stopping))
            {
                batch.Clear();
                while (batch.Count < _settings.MaxBatch && _queue.Reader.TryRead(out Job? item))
                {
                    batch.Add(item);
                }
                _counters.Inference.SetQueueDepth(_queue.Reader.Count);
                try
                {
                    await ProcessAsync(batch, stopping);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    // A bug must not stop the module: the batch stays unacknowledged and comes back after a reconnect.
                    Interlocked.Increment(ref _counters.Failures);
                    _logger.LogError(e, "Batch of {Count} failed", batch.Count);
                    foreach (DirectJob direct in batch.OfType<DirectJob>()) direct.Answer.TrySetException(e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        foreach (DirectJob direct in Drain().OfType<DirectJob>()) direct.Answer.TrySetCanceled(stopping);
    }

    /// <summary>No more work: <see cref="RunAsync"/> ends once the queue is empty.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    private IEnumerable<Job> Drain()
    {
        while (_queue.Reader.TryRead(out Job? job)) yield return job;
    }

    private async Task ProcessAsync(List<Job> batch, CancellationToken stopping)
    {
        // What each job is: a request to classify (with the protocol that answers it), an error to answer, or
        // nothing (a message of a connection that has since dropped: the broker redelivers it on the new one).
        var parsed = new (MessageProtocol? Protocol, ParsedMessage? Message)[batch.Count];
        var texts = new List<string>();
        var filters = new List<IReadOnlyCollection<string>?>();
        for (int i = 0; i < batch.Count; i++)
        {
            switch (batch[i])
            {
                case MessageJob { Message: var message } when message.Connection != _connection!.Connection:
                    Interlocked.Increment(ref _counters.StaleSkipped);
                    break;
                case MessageJob { Message: var message }:
                    parsed[i] = Parse(message);
                    if (parsed[i].Message is TranscriptRequest request)
                    {
                        texts.Add(request.Text);
                        filters.Add(request.IntentFilter);
                    }
                    break;
                case DirectJob direct:
                    texts.Add(direct.Text);
                    filters.Add(direct.IntentFilter);
                    break;
            }
        }

        long start = Stopwatch.GetTimestamp();
        IntentResult[] results = texts.Count == 0 ? [] : _runtime.Classify(texts, filters);
        double perUtterance = texts.Count == 0 ? 0 : Stopwatch.GetElapsedTime(start).TotalMilliseconds / texts.Count;

        int next = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            if (batch[i] is DirectJob direct)
            {
                direct.Answer.TrySetResult(results[next++]);
                continue;
            }
            ReceivedMessage message = ((MessageJob)batch[i]).Message;
            MqttConnection connection = _connection!;
            switch (parsed[i].Message)
            {
                case TranscriptRequest request:
                    IntentResult result = results[next++];
                    double elapsed = Stopwatch.GetElapsedTime(message.ReceivedTimestamp).TotalMilliseconds;
                    foreach (OutgoingMessage outgoing in Answers(parsed[i].Protocol!, request, result, elapsed))
                    {
                        await connection.PublishAsync(outgoing, stopping);
                    }
                    _counters.Inference.RecordCompleted(TimeSpan.FromMilliseconds(perUtterance));
                    if (message.Message.Dup) Interlocked.Increment(ref _counters.Redelivered);
                    break;
                case RequestError error:
                    _counters.Inference.RecordFailed();
                    _logger.LogWarning("Rejected a message on {Topic} (id {Id}): {Reason}", message.Message.Topic, error.Id, error.Reason);
                    await connection.PublishAsync(parsed[i].Protocol!.Error(error), stopping);
                    break;
                default:
                    continue;
            }
            await connection.AcknowledgeAsync(message, stopping);
        }
    }

    private (MessageProtocol Protocol, ParsedMessage Message) Parse(ReceivedMessage message)
    {
        string topic = message.Message.Topic;
        foreach (MessageProtocol protocol in _protocols)
        {
            if (protocol.Reads(topic))
            {
                return (protocol, protocol.Parse(message, _settings.MaxPayloadBytes));
            }
        }
        return (_unknownTopic, new RequestError(ProtocolProfile.Native, PayloadReader.DerivedId(topic, message.Message.Payload),
            $"no protocol reads topic {topic}", _settings.SiteId));
    }

    private IEnumerable<OutgoingMessage> Answers(MessageProtocol protocol, TranscriptRequest request, IntentResult result, double elapsed)
    {
        foreach (OutgoingMessage message in protocol.Answers(request, result, elapsed))
        {
            yield return message;
        }
        // IoT Hub takes no topics but its own.
        if (_settings.HomeAssistant.Discovery && protocol.Profile != ProtocolProfile.Azure)
        {
            yield return HomeAssistantDiscovery.Event(_settings.SiteId, result);
        }
    }
}
