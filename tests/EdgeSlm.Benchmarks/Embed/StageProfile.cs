using System.Diagnostics;
using System.Globalization;
using System.Text;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Benchmarks.Embed;

/// <summary>
/// Where the time of one forward pass goes: EdgeSlm's encoder with its stage timer on, batch 1, on the embed
/// benchmark's utterances. Each round embeds every utterance once; the table gives, per stage, the median and
/// the minimum over rounds of the mean µs per utterance (the minimum is the least disturbed by neighbours).
/// </summary>
internal static class StageProfile
{
    public static int Run(int threads, int rounds, string? modelPath, int minTokens, int maxTokens)
    {
        modelPath ??= EmbedBenchmark.ConvertDefaultModel();
        using BertModel model = BertModel.Load(modelPath);
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        int[][] utterances = EmbedBenchmark.Utterances(200).Select(s => tokenizer.Encode(s))
            .Where(ids => ids.Length >= minTokens && ids.Length <= maxTokens).ToArray();
        var embedding = new float[model.Config.HiddenSize];
        int[] length = new int[1];
        using var encoder = new BertEncoder(model, threads);
        void EmbedAll()
        {
            foreach (int[] ids in utterances)
            {
                length[0] = ids.Length;
                encoder.Encode(ids, length, embedding);
            }
        }
        for (int i = 0; i < 3; i++) EmbedAll();

        string[] stages = Enum.GetNames<BertEncoder.Stage>();
        var perRound = new double[rounds][];
        var totals = new double[rounds];
        var ticks = new long[stages.Length];
        for (int round = 0; round < rounds; round++)
        {
            // Alternate timed-by-stage and plain rounds: the plain ones show what the stage timer itself costs.
            Array.Clear(ticks);
            encoder.ProfileStages(ticks);
            EmbedAll();
            encoder.ProfileStages(null);
            perRound[round] = ticks.Select(t => t * 1e6 / Stopwatch.Frequency / utterances.Length).ToArray();
            long start = Stopwatch.GetTimestamp();
            EmbedAll();
            totals[round] = Stopwatch.GetElapsedTime(start).TotalMicroseconds / utterances.Length;
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Stages of one forward pass, {Path.GetFileName(modelPath)}, {threads} thread(s), {utterances.Length} utterances of {minTokens}-{maxTokens} tokens (mean {utterances.Average(u => u.Length):F1}), {rounds} rounds, path {encoder.Path}");
        text.AppendLine(CultureInfo.InvariantCulture, $"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        text.AppendLine();
        text.AppendLine("| stage | median µs | min µs | share of median |");
        text.AppendLine("| --- | ---: | ---: | ---: |");
        double sumMedian = Enumerable.Range(0, stages.Length).Sum(s => Median(perRound.Select(r => r[s])));
        for (int s = 0; s < stages.Length; s++)
        {
            double median = Median(perRound.Select(r => r[s])), min = perRound.Min(r => r[s]);
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {stages[s]} | {median:F1} | {min:F1} | {median / sumMedian:P1} |"));
        }
        text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| sum of stages | {sumMedian:F1} | {Enumerable.Range(0, stages.Length).Sum(s => perRound.Min(r => r[s])):F1} | |"));
        text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| whole Encode, timer off | {Median(totals):F1} | {totals.Min():F1} | |"));
        Console.WriteLine(text);
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
